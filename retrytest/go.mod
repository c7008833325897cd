module github.com/jittered/retry/retrytest

go 1.26.0

require golang.org/x/time v0.16.0

require (
	github.com/jittered/retry v0.1.0
	go.uber.org/goleak v1.3.0
)
