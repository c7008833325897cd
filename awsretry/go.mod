module github.com/jittered/retry/awsretry

go 1.26

require github.com/jittered/retry v0.0.0-00010101000000-000000000000

require (
	github.com/aws/aws-sdk-go-v2 v1.48.0
	github.com/aws/smithy-go v1.28.9
)

replace github.com/jittered/retry => ../
