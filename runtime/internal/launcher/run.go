package launcher

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/cas"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/fspf"
)

// forwarded are the signals the runtime passes on to the program.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// describe words an error as the FATAL line shows it: a file's path and the system's words for what went
// wrong ("/code/app.py: Permission denied"), or the error's own message.
func describe(err error) string {
	var pathError *os.PathError
	if errors.As(err, &pathError) {
		return pathError.Path + ": " + strerror(pathError.Err)
	}
	var linkError *os.LinkError
	if errors.As(err, &linkError) {
		return linkError.New + ": " + strerror(linkError.Err)
	}
	return err.Error()
}

// strerror is the C library's wording ("No such file or directory"), which Go's errno strings follow in
// lower case.
func strerror(err error) string {
	text := err.Error()
	if text == "" {
		return text
	}
	return strings.ToUpper(text[:1]) + text[1:]
}

// commitFailure is a commit that must stop the program (a refused or conflicting swap, an attack).
type commitFailure struct{ message string }

func (c *commitFailure) Error() string { return c.message }

// casAway is a CAS unreachable for the runtime's whole patience: this commit did not happen.
type casAway struct{ message string }

func (c *casAway) Error() string { return c.message }

// CommitAll commits every volume; an error is a *commitFailure, a *casAway, or another (a file that
// changed while it was read: not a refusal, the next commit reads it again).
func CommitAll(volumes []*fspf.Volume) error {
	for _, volume := range volumes {
		if _, err := volume.Commit(); err != nil {
			var casError *cas.Error
			var integrity *fspf.IntegrityError
			var rollback *fspf.RollbackError
			var usage *fspf.UsageError
			var conflict *fspf.AnchorConflictError
			switch {
			case errors.As(err, &casError) && casError.Status == 0:
				return &casAway{fmt.Sprintf("volume %s: not committed, %v (committed generation %d is kept)", volume.Name, err, volume.Generation())}
			case errors.As(err, &casError), errors.As(err, &integrity), errors.As(err, &rollback),
				errors.As(err, &usage), errors.As(err, &conflict):
				return &commitFailure{fmt.Sprintf("volume %s: commit failed: %v", volume.Name, err)}
			}
			return err
		}
	}
	return nil
}

// lookPath finds the program on the policy environment's PATH, as execvp would with that environment.
func lookPath(program string, environment map[string]string) string {
	if strings.Contains(program, "/") {
		return program
	}
	search, set := environment["PATH"]
	if !set {
		search = "/bin:/usr/bin"
	}
	for _, directory := range filepath.SplitList(search) {
		if directory == "" {
			directory = "."
		}
		candidate := filepath.Join(directory, program)
		if info, err := os.Stat(candidate); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return candidate
		}
	}
	return program
}

// Run is step 4: the policy's command, environment and directory; signals forwarded; periodic commits
// when configured; the program's exit code (128 + the signal that ended it).
func Run(configuration *Configuration, volumes []*fspf.Volume) (int, error) {
	interval, err := configuration.CommitEvery()
	if err != nil {
		return 0, err
	}
	environment := make([]string, 0, len(configuration.Environment))
	for name, value := range configuration.Environment {
		environment = append(environment, name+"="+value)
	}
	sort.Strings(environment)
	program := exec.Command(lookPath(configuration.Command[0], configuration.Environment), configuration.Command[1:]...)
	program.Args[0] = configuration.Command[0]
	program.Env = environment
	program.Dir = configuration.Pwd
	program.Stdin, program.Stdout, program.Stderr = os.Stdin, os.Stdout, os.Stderr
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, forwarded...)
	defer signal.Stop(signals)
	if err := program.Start(); err != nil {
		var execError *exec.Error
		if errors.As(err, &execError) {
			err = execError.Err
		}
		var pathError *os.PathError
		if errors.As(err, &pathError) {
			err = pathError.Err
		}
		return 0, refuse("cannot start %s: %s", configuration.Command[0], strerror(err))
	}
	done := make(chan struct{})
	go func() {
		program.Wait()
		close(done)
	}()
	var tick <-chan time.Time
	if interval > 0 {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		select {
		case <-done:
			return exitCode(program.ProcessState), nil
		case number := <-signals:
			program.Process.Signal(number)
		case <-tick:
			err := CommitAll(volumes)
			var failure *commitFailure
			switch {
			case err == nil:
				logInfo("volumes committed while running (every %g s)", interval.Seconds())
			case errors.As(err, &failure):
				// Another writer, or a refusal: stop the program rather than let it write what can no
				// longer be committed.
				program.Process.Signal(syscall.SIGTERM)
				<-done
				return 0, err
			default:
				// The CAS is away, or a file changed while it was read: the next interval (or the exit) commits.
				logInfo("commit postponed: %v", err)
			}
		}
	}
}

func exitCode(state *os.ProcessState) int {
	if status, ok := state.Sys().(syscall.WaitStatus); ok && status.Signaled() {
		return 128 + int(status.Signal())
	}
	return state.ExitCode()
}

// Main is the runtime: prepare, run, commit, exit.
func Main() int {
	cas.Warn = func(message string) { fmt.Fprintf(os.Stderr, "[SCONIFY|WARNING] %s\n", message) }
	configuration, volumes, err := Prepare("/")
	if err == nil {
		_, err = configuration.CommitEvery()
	}
	if err != nil {
		return Fatal(describe(err))
	}
	code, err := Run(configuration, volumes)
	if err != nil {
		return Fatal(describe(err))
	}
	started := time.Now()
	if err := CommitAll(volumes); err != nil {
		var failure *commitFailure
		var away *casAway
		if errors.As(err, &failure) || errors.As(err, &away) {
			return Fatal(err.Error())
		}
		return Fatal("volumes: commit failed: " + describe(err))
	}
	if len(volumes) > 0 {
		logInfo("volumes committed (%s s)", seconds(started))
	}
	return code
}
