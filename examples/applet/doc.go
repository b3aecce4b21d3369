// Command applet is a sample applet: it checks in with the console that
// launched it and stays until the console tells it to stop or the
// connection drops.
//
// On Windows it runs under the Service Control Manager or as a plain
// process; in the lab it is the Linux build that the targets really run.
package main
