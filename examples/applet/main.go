package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "applet: not implemented yet (issue 8)")
	os.Exit(2)
}
