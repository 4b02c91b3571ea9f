package wire

// ApplyUnit answers a unit of commands into res (len(unit) results): a
// command alone through apply; several through check first, every one,
// then — when check would apply every one — all through apply, else none
// (a refused one answered with check's result, the others Withdrawn).
// check answers what apply would, changing nothing. The executive and the
// fakes of it apply units with it, so they cannot differ.
//
// Hot path: allocates nothing.
func ApplyUnit(unit []Command, res []Result, check, apply func(*Command) Result) {
	if len(unit) == 1 {
		res[0] = apply(&unit[0])
		return
	}
	all := true
	for i := range unit {
		res[i] = check(&unit[i])
		all = all && res[i].Status == Applied
	}
	if !all {
		for i := range res {
			if res[i].Status == Applied {
				res[i].Status = Withdrawn
			}
		}
		return
	}
	for i := range unit {
		res[i] = apply(&unit[i])
	}
}
