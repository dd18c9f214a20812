//go:build !linux

package dirwatch

import (
	"errors"
	"os"
)

// watchDir has no implementation here: without inotify, callers poll.
func watchDir(string) (*os.File, error) { return nil, errors.ErrUnsupported }

func readEvents(*os.File, map[string]bool, func()) {}
