package redis_test

// must returns a constructor's adapter, panicking on its error: the
// constructors here fail only on a nil client or an empty key id, which
// would be a bug in the test itself.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
