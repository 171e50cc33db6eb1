// A Go program with the generated Go SDK of the sconify package: a creator identity of its own, the
// CAS's namespace and a service session, run by the real engine through the Automation API's inline
// program (this process is the program's language host). It ups, previews again (nothing to change),
// destroys, and prints the session's name.
//
// Environment: PULUMI_ROOT (the directory holding bin/pulumi), WORK (the project's folder), CAS, CAS_CA,
// NAMESPACE_POLICY, SERVICE_POLICY; the engine's own variables (PULUMI_HOME, backend, passphrase).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pulumi-sconify/pulumi-sconify/sdk/go/sconify"
)

func program(ctx *pulumi.Context) error {
	creator, err := sconify.NewCreatorIdentity(ctx, "creator", nil)
	if err != nil {
		return err
	}
	session := func(name, policy string, options ...pulumi.ResourceOption) (*sconify.CasSession, error) {
		return sconify.NewCasSession(ctx, name, &sconify.CasSessionArgs{
			CasClientAddress:    pulumi.String(os.Getenv("CAS")),
			CasCaCertificate:    pulumi.String(os.Getenv("CAS_CA")),
			IdentityCertificate: creator.CertificatePem,
			IdentityKey:         creator.PrivateKeyPem,
			Policy:              pulumi.ToSecret(pulumi.String(policy)),
		}, options...)
	}
	namespace, err := session("namespace", os.Getenv("NAMESPACE_POLICY"))
	if err != nil {
		return err
	}
	service, err := session("service", os.Getenv("SERVICE_POLICY"), pulumi.DependsOn([]pulumi.Resource{namespace}))
	if err != nil {
		return err
	}
	ctx.Export("session", service.Name)
	return nil
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	command, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{
		Root: os.Getenv("PULUMI_ROOT"), SkipVersionCheck: true,
	})
	if err != nil {
		return err
	}
	stack, err := auto.UpsertStackInlineSource(ctx, "go", "sconify-go", program,
		auto.Pulumi(command), auto.WorkDir(os.Getenv("WORK")))
	if err != nil {
		return err
	}
	up, err := stack.Up(ctx)
	if err != nil {
		return err
	}
	again, err := stack.Preview(ctx, optpreview.ExpectNoChanges())
	if err != nil {
		return err
	}
	if _, err := stack.Destroy(ctx); err != nil {
		return err
	}
	fmt.Printf("%v %v\n", up.Outputs["session"].Value, again.ChangeSummary)
	return nil
}
