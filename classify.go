package retry

// Decision is a classifier's verdict on an error.
type Decision uint8

const (
	// Unknown means "not mine to decide": the next classifier is asked.
	Unknown Decision = iota
	// Retry means the error is transient.
	Retry
	// Throttled means the error is a throttle: retried, and fed to the
	// adaptive limiter, the budget and the throttle schedule as one.
	Throttled
	// Stop means the error will not go away on retry.
	Stop
)

// String returns the decision's name.
func (d Decision) String() string {
	switch d {
	case Unknown:
		return "unknown"
	case Retry:
		return "retry"
	case Throttled:
		return "throttled"
	case Stop:
		return "stop"
	}
	return "Decision(?)"
}

// A Classifier decides whether an error is worth retrying. It must be safe
// for concurrent use.
type Classifier interface {
	Classify(err error) Decision
}

// ClassifierFunc adapts a function to Classifier.
type ClassifierFunc func(err error) Decision

// Classify calls f(err).
func (f ClassifierFunc) Classify(err error) Decision { return f(err) }

// Classifiers asks each classifier in turn and returns the first answer that
// is not Unknown, or Unknown if all abstain.
type Classifiers []Classifier

// Classify implements Classifier.
func (cs Classifiers) Classify(err error) Decision {
	for _, c := range cs {
		if c == nil {
			continue
		}
		if d := c.Classify(err); d != Unknown {
			return d
		}
	}
	return Unknown
}

// classify is the loop's decision for a failed attempt whose error is not
// Permanent and whose parent context is live: the policy's classifier first,
// then the built-in rule — a throttle (IsThrottle) is Throttled, anything
// else is retried as transient.
func (p *Policy) classify(err error) Decision {
	if p.Classifier != nil {
		switch d := p.Classifier.Classify(err); d {
		case Retry, Throttled, Stop:
			return d
		}
	}
	if IsThrottle(err) {
		return Throttled
	}
	return Retry
}
