// Package template reads the SAM template (template.yaml) so that the local
// stack and the tests take the table, the functions and the HTTP routes from
// the one file that is deployed, instead of from a copy that could drift.
//
// CloudFormation short tags (!Ref, !Sub, !GetAtt, …) are accepted: each is
// rewritten to its long JSON form ({"Ref": "Api"}, {"Fn::Sub": "…"},
// {"Fn::GetAtt": ["Table", "Arn"]}) before decoding, which is how
// CloudFormation itself reads them. Only what the local tools need is
// interpreted; everything else is ignored.
package template
