package deploy

import (
	"errors"
	"fmt"

	"minivercel/schema"
)

// The kinds of refusal a user can get. Every *Error wraps one of them, so a
// front end picks its status code with errors.Is and shows Error.Msg as is.
var (
	// ErrInvalid: the input is wrong; Error.Field names the part at fault.
	ErrInvalid = schema.ErrInvalid
	// ErrNotFound: the thing named does not exist (or is not the caller's to
	// see, which reads the same).
	ErrNotFound = schema.ErrNotFound
	// ErrConflict: the request clashes with the current state (a name that is
	// taken, a build that already finished, nothing live to redeploy).
	ErrConflict = schema.ErrConflict
	// ErrForbidden: the caller may not do this.
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable: this process cannot do it (it runs no build system, or
	// the running server did not answer).
	ErrUnavailable = errors.New("unavailable")
	// ErrActivation: a build could not go live; the previous deployment
	// keeps serving. The message is about the user's own app.
	ErrActivation = errors.New("activation failed")
	// ErrTimeout: the running server did not finish in time; it may still.
	ErrTimeout = errors.New("timed out")
)

// Error is a refusal worded for the user who asked: the CLI prints Msg, the
// API answers it as {"error": Msg, "field": Field}, the pages show it next to
// the field. The same input gets the same Error from every front end.
type Error struct {
	// Kind is one of the Err* sentinels above.
	Kind error
	// Field names the input at fault for ErrInvalid, in the API's JSON
	// spelling ("health_path", "key", "domain"); "" when no single field is.
	Field string
	// Msg says what is wrong and, where it helps, what to do instead. It
	// never holds a secret value.
	Msg string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, ErrInvalid) and friends work.
func (e *Error) Unwrap() error { return e.Kind }

func refuse(kind error, field, format string, args ...any) *Error {
	return &Error{Kind: kind, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) *Error {
	return refuse(ErrInvalid, field, format, args...)
}

// Invalid is a front end's own refusal of malformed input (a body that is not
// JSON, a flag that is not a number), in the same form as the service's.
func Invalid(field, format string, args ...any) *Error { return invalid(field, format, args...) }

func notFound(format string, args ...any) *Error { return refuse(ErrNotFound, "", format, args...) }

func conflict(format string, args ...any) *Error { return refuse(ErrConflict, "", format, args...) }

// AsError returns the *Error in err's chain, or nil for an internal failure
// (a database error), which a front end logs and answers vaguely.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// Refusals lists every *Error in err, which may be several joined with
// errors.Join (a form with more than one field at fault).
func Refusals(err error) []*Error {
	if e, ok := err.(*Error); ok {
		return []*Error{e}
	}
	var out []*Error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, x := range j.Unwrap() {
			out = append(out, Refusals(x)...)
		}
	}
	return out
}
