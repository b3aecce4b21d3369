// Command connect connects to one or many hosts: it authenticates, copies
// the applet, launches it and prints each session's states, progress and,
// on failure, its diagnosis.
package main
