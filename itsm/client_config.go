package itsm

// Config returns the client's configuration (secrets included: callers
// must not print it; its String methods redact them).
func (c *Client) Config() Config { return c.cfg }
