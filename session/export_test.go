package session

// LiveSessions returns the number of sessions c tracks (not yet over).
func LiveSessions(c *Client) int { return c.liveSessions() }
