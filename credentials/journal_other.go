//go:build !unix

package credentials

import "os"

func ownedByUs(os.FileInfo) bool { return true }
