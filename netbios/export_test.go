package netbios

// Update exposes -update to the external test package.
var Update = update
