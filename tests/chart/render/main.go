// A chart renderer made of what Helm renders with: Go's text/template, the sprig function library (Debian's
// golang-github-masterminds-sprig-dev) and Helm's own include and toYaml. No Helm binary or client-side
// `helm template` is to be had here; this renders the generated chart's templates for the tests, which compare
// the objects with the workload model's. Usage: render CHART_DIR < {"Values": ..., "Release": ..., "Chart": ...}
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

func main() {
	chart := os.Args[1]
	var data map[string]interface{}
	if err := json.NewDecoder(os.Stdin).Decode(&data); err != nil {
		fail(err)
	}
	root := template.New("chart")
	funcs := sprig.TxtFuncMap()
	funcs["include"] = func(name string, value interface{}) (string, error) {
		var out bytes.Buffer
		err := root.ExecuteTemplate(&out, name, value)
		return out.String(), err
	}
	funcs["toYaml"] = func(value interface{}) string {
		out, err := yaml.Marshal(value)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(out), "\n")
	}
	root.Funcs(funcs).Option("missingkey=zero")
	files, _ := filepath.Glob(filepath.Join(chart, "templates", "*"))
	sort.Strings(files)
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			fail(err)
		}
		if _, err := root.New(filepath.Base(file)).Parse(string(text)); err != nil {
			fail(err)
		}
	}
	for _, file := range files {
		name := filepath.Base(file)
		if strings.HasPrefix(name, "_") {
			continue
		}
		var out bytes.Buffer
		if err := root.ExecuteTemplate(&out, name, data); err != nil {
			fail(err)
		}
		fmt.Printf("---\n# Source: %s\n%s\n", name, out.String())
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
