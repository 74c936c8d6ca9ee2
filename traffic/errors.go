package traffic

import "errors"

// ErrInvalidRange is what ParseRange returns for anything but "hour" and
// "day".
var ErrInvalidRange = errors.New("range must be hour or day")
