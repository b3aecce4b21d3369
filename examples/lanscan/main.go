package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "lanscan: not implemented yet (issue 3)")
	os.Exit(2)
}
