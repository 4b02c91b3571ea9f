package main

import "github.com/spf13/cobra"

// commands lists the implemented subcommands; one line per subcommand file.
func commands() []*cobra.Command {
	return []*cobra.Command{
		newSimCmd(),
		newBoardCmd(),
		newValidateCmd(compileBlocks),
		newConfigCmd(),
		newStatusCmd(),
		newTagsCmd(),
		newSetCmd(),
		newApplyCmd(),
		newTuneCmd(),
		newAuditCmd(),
		newLatencyCmd(),
		newExecutiveCmd(),
		newRunCmd(),
		newStopCmd(),
		newServiceCmd(),
		newImageCmd(),
		newPartitionCmd(),
	}
}
