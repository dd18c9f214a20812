package auth

// Each scheme's Config type decodes from JSON as the scheme's options do
// from Params, so that a configuration file decoded straight into a Config
// means what the same options given to New mean: "ttl": 3600 is an hour,
// not 3600 ns, and "90s" and "true" are accepted. Unknown options are
// refused; options absent from the JSON leave their fields as they were,
// as encoding/json does.

// UnmarshalJSON reads a JSON object of options as New reads Params.
func (c *APIKeyConfig) UnmarshalJSON(b []byte) error { return unmarshalConfig("api_key", b, c) }

// UnmarshalJSON reads a JSON object of options as New reads Params.
func (c *BasicConfig) UnmarshalJSON(b []byte) error { return unmarshalConfig("basic", b, c) }

// UnmarshalJSON reads a JSON object of options as New reads Params.
func (c *BearerConfig) UnmarshalJSON(b []byte) error { return unmarshalConfig("bearer", b, c) }

// UnmarshalJSON reads a JSON object of options as New reads Params.
func (c *ClientCredentialsConfig) UnmarshalJSON(b []byte) error {
	return unmarshalConfig("oauth2_client_credentials", b, c)
}

// UnmarshalJSON reads a JSON object of options as New reads Params.
func (c *CognitoSRPConfig) UnmarshalJSON(b []byte) error {
	return unmarshalConfig(cognitoSRPScheme, b, c)
}

// UnmarshalJSON reads a JSON object of options as New reads Params.
func (c *JWTConfig) UnmarshalJSON(b []byte) error { return unmarshalConfig("jwt_es512", b, c) }

// UnmarshalJSON reads a JSON object of options as New reads Params.
func (c *PasswordConfig) UnmarshalJSON(b []byte) error {
	return unmarshalConfig("oauth2_password", b, c)
}

// UnmarshalJSON reads a JSON object of options as New reads Params.
func (c *RefreshTokenConfig) UnmarshalJSON(b []byte) error {
	return unmarshalConfig("oauth2_refresh_token", b, c)
}

// UnmarshalJSON reads a JSON object of options as New reads Params.
func (c *TCHMACConfig) UnmarshalJSON(b []byte) error { return unmarshalConfig("tc_hmac", b, c) }

// UnmarshalJSON reads a JSON object of options as New reads Params.
func (c *TCTokenConfig) UnmarshalJSON(b []byte) error { return unmarshalConfig("tc_token", b, c) }

// UnmarshalJSON reads a JSON object of options as New reads Params.
func (c *TokenEndpointConfig) UnmarshalJSON(b []byte) error {
	return unmarshalConfig("token_endpoint", b, c)
}
