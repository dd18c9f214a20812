package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/pancloud"
)

func (a *app) execCmd() *cobra.Command {
	var minValid time.Duration
	cmd := &cobra.Command{
		Use:   "exec [PROFILE] -- COMMAND [ARG...]",
		Short: "Run a command with the profile's access token in its environment",
		Long: `Get a valid access token of the profile, as "tokencache token" does, then run
COMMAND with it in the environment, as aws-vault exec does:

  TOKENCACHE_ACCESS_TOKEN   the access token
  TOKENCACHE_TOKEN_TYPE     its type (Bearer)
  TOKENCACHE_TOKEN_EXPIRY   its expiry (RFC 3339), when known

The rest of the environment is passed on, less PAN_* and TOKENCACHE_*
variables (credentials, store URLs that may hold passwords). The exit status is
COMMAND's; --timeout bounds getting the token, not COMMAND. The token is
valid at least --min-valid longer when COMMAND starts; a COMMAND that runs
longer should call "tokencache token" itself.`,
		Example: `  tokencache exec -- sh -c 'curl -H "Authorization: Bearer $TOKENCACHE_ACCESS_TOKEN" https://api.example/v1/things'
  tokencache exec work --min-valid 15m -- ./nightly-job`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			switch {
			case dash < 0 || dash == len(args):
				return usagef("exec: give the command after --: tokencache exec [PROFILE] -- COMMAND [ARG...]")
			case dash > 1:
				return usagef("exec: at most one profile before --, got %q", args[:dash])
			}
			return nil
		},
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash == 1 {
				if f := cmd.Flag("profile"); f.Changed && f.Value.String() != args[0] {
					return usagef("the profile is given twice: %q as an argument and %q by --profile", args[0], f.Value.String())
				}
				a.profile = args[0]
			}
			if cmd.Flag("min-valid").Changed {
				if minValid < 0 {
					return usagef("--min-valid must not be negative")
				}
				a.tune.skew = minValid
			}
			var tok *credentials.Token
			err := a.withCredentials(ctx, func(c *credentials.Credentials) error {
				var err error
				if tok, err = c.Token(ctx); err != nil {
					return err
				}
				return flushWithin(ctx, c)
			})
			if err != nil {
				return err
			}
			if cmd.Flag("min-valid").Changed {
				a.warnShortToken(tok, minValid)
			}
			// Not CommandContext: --timeout was for the token, and a
			// signal reaches the child from the terminal by itself.
			child := exec.Command(args[dash], args[dash+1:]...)
			child.Stdin, child.Stdout, child.Stderr = a.stdin, a.stdout, a.stderr
			var environ []string
			if a.environ != nil {
				environ = a.environ()
			}
			typ := tok.TokenType
			if typ == "" {
				typ = "Bearer"
			}
			child.Env = append(execEnv(environ),
				"TOKENCACHE_ACCESS_TOKEN="+tok.AccessToken.Reveal(), "TOKENCACHE_TOKEN_TYPE="+typ)
			if !tok.Expiry.IsZero() {
				child.Env = append(child.Env, "TOKENCACHE_TOKEN_EXPIRY="+tok.Expiry.UTC().Format(time.RFC3339))
			}
			err = child.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return &childExit{code: ee.ExitCode()}
			}
			if err != nil {
				return fmt.Errorf("exec: %w", err)
			}
			return nil
		}),
	}
	cmd.Flags().DurationVar(&minValid, "min-valid", 30*time.Second, "the token is valid at least this much longer when COMMAND starts")
	return cmd
}

// childExit carries exec's COMMAND's exit status, which tokencache exits
// with, printing nothing of its own (COMMAND said what it had to say).
type childExit struct{ code int }

func (e *childExit) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// execEnv is the environment exec hands CMD: the CLI's own, less what
// carries the secrets the token was made from (PAN_* credentials, store
// URLs that may hold passwords, every TOKENCACHE_* setting): CMD gets an
// access token, not the means to make more.
func execEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, pancloud.EnvPrefix) || strings.HasPrefix(name, "TOKENCACHE_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
