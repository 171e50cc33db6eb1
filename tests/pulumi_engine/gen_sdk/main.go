// gen-sdk writes the package's SDK for one language from its schema, with Pulumi's own code generators
// (pkg/v3/codegen/nodejs and go), the same functions Pulumi's Node.js and Go language hosts run for
// `pulumi package gen-sdk`. Those hosts are modules the Go proxy does not serve, so the tests build this
// instead (.ci/build-pulumi); users run `pulumi package gen-sdk` or `pulumi package add`.
//
// Usage: gen-sdk nodejs|go SCHEMA.json OUT-DIRECTORY
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/blang/semver"

	gogen "github.com/pulumi/pulumi/pkg/v3/codegen/go"
	nodejsgen "github.com/pulumi/pulumi/pkg/v3/codegen/nodejs"
	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)

const tool = "pulumi-sconify gen-sdk"

func main() {
	if len(os.Args) != 4 {
		fail(fmt.Errorf("usage: gen-sdk nodejs|go SCHEMA.json OUT-DIRECTORY"))
	}
	language, schemaPath, out := os.Args[1], os.Args[2], os.Args[3]
	data, err := os.ReadFile(schemaPath)
	if err != nil {
		fail(err)
	}
	var spec schema.PackageSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		fail(fmt.Errorf("%s: %w", schemaPath, err))
	}
	pkg, diagnostics, err := schema.BindSpec(spec, noOtherPackages{}, schema.ValidationOptions{})
	if err != nil {
		fail(err)
	}
	if diagnostics.HasErrors() {
		fail(diagnostics)
	}
	var files map[string][]byte
	switch language {
	case "nodejs":
		files, err = nodejsgen.GeneratePackage(tool, pkg, nil, nil, false, nil)
	case "go":
		files, err = gogen.GeneratePackage(tool, pkg, nil)
	default:
		err = fmt.Errorf("%s: not a language this tool generates (nodejs, go)", language)
	}
	if err != nil {
		fail(err)
	}
	for name, content := range files {
		path := filepath.Join(out, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			fail(err)
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			fail(err)
		}
	}
}

// noOtherPackages is the loader the binder asks for packages a schema refers to: the sconify schema
// refers to none (its types are its own, or Pulumi's built-in Any).
type noOtherPackages struct{}

func (noOtherPackages) LoadPackage(name string, _ *semver.Version) (*schema.Package, error) {
	return nil, fmt.Errorf("the schema refers to package %s, which this tool does not load", name)
}

func (l noOtherPackages) LoadPackageV2(
	_ context.Context, descriptor *schema.PackageDescriptor,
) (*schema.Package, error) {
	return l.LoadPackage(descriptor.Name, nil)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gen-sdk:", err)
	os.Exit(1)
}
