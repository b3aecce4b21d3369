// Command console is a small web console that shows how to embed
// lanconnect: a live host list, a filter, Connect, a credential dialog and
// session states.
package main
