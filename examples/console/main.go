package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "console: not implemented yet (issue 9)")
	os.Exit(2)
}
