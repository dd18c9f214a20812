package secret_test

import (
	"fmt"

	"github.com/tokencache/tokencache/secret"
)

// RedactURL masks passwords in store URLs for logs and errors.
func ExampleRedactURL() {
	fmt.Println(secret.RedactURL("redis://app:s3cret@cache:6379/0"))
	// Output: redis://app:*****@cache:6379/0
}
