package launcher

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestACommitIntervalMustBeAPositiveNumber(t *testing.T) {
	for _, value := range []string{"0", "-1", "soon", "nan", "NaN", "inf", "-inf", ""} {
		c := &Configuration{Environment: map[string]string{CommitInterval: value}}
		_, err := c.CommitEvery()
		var refusal *Refusal
		if !errors.As(err, &refusal) || !strings.Contains(err.Error(), CommitInterval) {
			t.Errorf("%q: %v", value, err)
		}
	}
	for value, want := range map[string]time.Duration{"0.05": 50 * time.Millisecond, "2": 2 * time.Second} {
		c := &Configuration{Environment: map[string]string{CommitInterval: value}}
		if got, err := c.CommitEvery(); err != nil || got != want {
			t.Errorf("%q: %v %v", value, got, err)
		}
	}
	if got, err := (&Configuration{}).CommitEvery(); got != 0 || err != nil {
		t.Errorf("unset: %v %v", got, err)
	}
}

func TestTheProgramIsFoundOnThePolicysPath(t *testing.T) {
	directory := t.TempDir()
	program := filepath.Join(directory, "service")
	if err := os.WriteFile(program, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := lookPath("service", map[string]string{"PATH": "/nonexistent:" + directory}); got != program {
		t.Errorf("found %s", got)
	}
	if got := lookPath("service", map[string]string{}); got != "service" {
		t.Errorf("without PATH: %s (the default path has no such program)", got)
	}
	if got := lookPath("./x/y", nil); got != "./x/y" {
		t.Errorf("a path: %s", got)
	}
}

func TestAnOrdinaryDirectoryIsNotMemory(t *testing.T) {
	// A directory made here is never a mount point, whatever file system holds it.
	err := requireMemory(filepath.Join(t.TempDir()), "volume V1")
	if err == nil || !strings.Contains(err.Error(), "(volume V1) is not a memory-backed mount") {
		t.Errorf("%v", err)
	}
}

func TestMountinfoEscapesAreRead(t *testing.T) {
	if got := unescapeMount(`/mnt/with\040space`); got != "/mnt/with space" {
		t.Errorf("%q", got)
	}
}

func TestRunKeepsTheExitCodeAndReportsASignal(t *testing.T) {
	for command, want := range map[string]int{"exit 3": 3, "kill -TERM $$": 128 + 15, "true": 0} {
		code, err := Run(&Configuration{Command: []string{"/bin/sh", "-c", command}, Pwd: "/"}, nil)
		if err != nil || code != want {
			t.Errorf("%s: %d %v", command, code, err)
		}
	}
	_, err := Run(&Configuration{Command: []string{"/nonexistent/program"}, Pwd: "/"}, nil)
	if err == nil || err.Error() != "cannot start /nonexistent/program: No such file or directory" {
		t.Errorf("%v", err)
	}
}

func TestThePolicysEnvironmentIsAllTheProgramSees(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env")
	t.Setenv("FROM_THE_CONTAINER", "1")
	configuration := &Configuration{Command: []string{"/bin/sh", "-c", "env > " + out},
		Environment: map[string]string{"FROM_THE_POLICY": "yes"}, Pwd: "/"}
	if code, err := Run(configuration, nil); err != nil || code != 0 {
		t.Fatal(code, err)
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), "FROM_THE_POLICY=yes") || strings.Contains(string(data), "FROM_THE_CONTAINER") {
		t.Errorf("%s", data)
	}
}
