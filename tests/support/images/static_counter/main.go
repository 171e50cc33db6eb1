// The counter as a static Go service: what a `scratch` image with one binary holds. It reads its greeting
// from /conf (an encrypted region), counts its executions in /V1/count (a volume) and says so as the
// Python counter does. No shell, no interpreter, no C library in its image.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	greeting, err := os.ReadFile("/conf/greeting")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	count := 0
	if data, err := os.ReadFile("/V1/count"); err == nil {
		count, _ = strconv.Atoi(strings.TrimSpace(string(data)))
	}
	fmt.Println(strings.TrimSpace(string(greeting)))
	fmt.Printf("The number of executions is %d\n", count)
	if err := os.WriteFile("/V1/count", []byte(strconv.Itoa(count+1)), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
