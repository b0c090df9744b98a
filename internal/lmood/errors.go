package lmood

import (
	"errors"
	"fmt"

	"github.com/lmood/lmood/internal/store"
)

// ErrUsage marks a request that is wrong as given (a bad option value, a
// missing input): the caller should fix the request, not retry it. The CLI
// maps it to exit code 2, a server to HTTP 400. Test with errors.Is.
var ErrUsage = errors.New("invalid request")

// OptionError is a bad value of one request option. Option is the option's
// name as flags and JSON spell it ("samples", "sigma", "layer", ...).
type OptionError struct {
	Option string
	Err    error
}

// Error returns "OPTION: reason".
func (e *OptionError) Error() string { return fmt.Sprintf("%s: %v", e.Option, e.Err) }

// Unwrap returns the reason.
func (e *OptionError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUsage) hold.
func (e *OptionError) Is(target error) bool { return target == ErrUsage }

// optionErr builds an *OptionError with a formatted reason.
func optionErr(option, format string, args ...any) error {
	return &OptionError{Option: option, Err: fmt.Errorf(format, args...)}
}

// UsageError wraps err so that errors.Is(err, ErrUsage) holds, keeping
// err's message and identity.
func UsageError(err error) error {
	if err == nil {
		return nil
	}
	return &usageErr{err}
}

type usageErr struct{ error }

func (e *usageErr) Unwrap() error        { return e.error }
func (e *usageErr) Is(target error) bool { return target == ErrUsage }

// Classify marks the errors that mean a request named something invalid
// as usage errors (errors.Is(err, ErrUsage)): a malformed model name
// (store.ErrInvalidName) and a name `lmood pull` does not know
// (store.ErrNotPullable). Other errors, and nil, are returned unchanged.
func Classify(err error) error {
	if err == nil || errors.Is(err, ErrUsage) {
		return err
	}
	if errors.Is(err, store.ErrInvalidName) || errors.Is(err, store.ErrNotPullable) {
		return UsageError(err)
	}
	return err
}
