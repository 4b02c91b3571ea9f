package main

import (
	"fmt"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/io/sim"
)

// newSimCmd is `mkrt sim <tank|heater|conveyor|pumps|blending> [--listen ADDR] [--speed N]`.
func newSimCmd() *cobra.Command {
	var listen string
	var speed float64
	var pumps int
	cmd := &cobra.Command{
		Use:   "sim MODEL",
		Short: "run a plant simulator (" + strings.Join(simModels(), ", ") + ") as a Modbus TCP slave until Ctrl-C",
		Long: "Run a plant simulator as a Modbus TCP slave until interrupted.\n\n" +
			"Models and their default addresses: tank 127.0.0.1:15020, heater 127.0.0.1:15030,\n" +
			"conveyor 127.0.0.1:15040, pumps 127.0.0.1:15050 (--pumps N pumps), blending 127.0.0.1:15040,\n" +
			"mixer 127.0.0.1:15060 (the batch mixer of configs/examples/batch-mixer.yaml).\n" +
			"The register maps are in `go doc github.com/mkrt/mkrt/io/sim`.",
		Args:      cobra.ExactArgs(1),
		ValidArgs: simModels(),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := newSimModel(args[0], pumps)
			if err != nil {
				return err
			}
			if speed <= 0 {
				return fmt.Errorf("sim: --speed %g must be positive", speed)
			}
			if listen == "" {
				listen = m.DefaultListen()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			srv, err := sim.Start(ctx, m, sim.Config{Listen: listen, Speed: speed})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sim %s: Modbus TCP on %s, speed %gx; Ctrl-C stops\n", m.Name(), srv.Addr(), speed)
			<-ctx.Done()
			return srv.Close()
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "listen address host:port (default: the model's, e.g. 127.0.0.1:15020; port 0 picks one)")
	cmd.Flags().Float64Var(&speed, "speed", 1, "sim seconds per wall second")
	cmd.Flags().IntVar(&pumps, "pumps", 2, "pumps: how many pumps the station has (1-16)")
	return cmd
}

// simModels lists every model `mkrt sim` runs.
func simModels() []string { return append(sim.Names(), "pumps", "blending", "mixer") }

// newSimModel returns the named model; pumps sizes the pump station.
func newSimModel(name string, pumps int) (sim.Model, error) {
	switch name {
	case "pumps":
		if pumps < 1 || pumps > 16 {
			return nil, fmt.Errorf("sim: --pumps %d is outside 1-16", pumps)
		}
		return sim.NewPumps(pumps), nil
	case "blending":
		return sim.NewBlending(), nil
	case "mixer":
		return sim.NewMixer(), nil
	}
	m, err := sim.New(name)
	if err != nil {
		return nil, fmt.Errorf("sim: unknown model %q (%s)", name, strings.Join(simModels(), ", "))
	}
	return m, nil
}
