module github.com/jittered/retry

go 1.26
