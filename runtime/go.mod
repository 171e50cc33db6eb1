module github.com/pulumi-sconify/pulumi-sconify/runtime

go 1.26.0

require golang.org/x/sys v0.50.0

toolchain go1.26.8
