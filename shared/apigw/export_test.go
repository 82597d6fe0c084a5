package apigw

import "github.com/aws/aws-lambda-go/events"

// SAMLocalClaims returns the claims s's sam local check puts in ev, nil
// when it refuses the token.
func SAMLocalClaims(s *Server, ev events.APIGatewayV2HTTPRequest) map[string]string {
	ev, refused := s.samLocalAuthorize(ev)
	if refused != nil {
		return nil
	}
	return ev.RequestContext.Authorizer.JWT.Claims
}
