package poller

import (
	"hash/fnv"
	"slices"
	"strconv"
)

// Partitions is how many partitions companies are hashed into. It is fixed:
// every replica must hash a company to the same partition, so it is not a
// setting (a mismatch would let two replicas scan one company).
const Partitions = 64

// PartitionOf returns the partition of a company: FNV-1a of its decimal id.
func PartitionOf(cid int64) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(strconv.FormatInt(cid, 10)))
	return int(h.Sum32() % Partitions)
}

// Assign decides which live replica should hold each partition, from what
// every replica can read: the live members, how many companies each
// partition has (weights) and who holds what now (held; holders that are
// not live are ignored). It is deterministic, so replicas with the same
// view agree; and sticky: a partition moves only when that makes the
// shares more even, so a joining replica takes partitions from the most
// loaded ones and a leaving one's partitions go to the least loaded.
//
// A partition's load is its companies (empty partitions weigh a little, so
// they spread too and future companies land evenly). The result keeps the
// most and the least loaded members within one partition's weight.
func Assign(members []string, weights [Partitions]int, held map[int]string) map[int]string {
	if len(members) == 0 {
		return map[int]string{}
	}
	members = slices.Clone(members)
	slices.Sort(members)
	live := map[string]bool{}
	for _, m := range members {
		live[m] = true
	}
	w := func(p int) int { return weights[p]*Partitions + 1 }
	load := map[string]int{}
	owner := map[int]string{}
	for p := range Partitions {
		if h, ok := held[p]; ok && live[h] {
			owner[p] = h
			load[h] += w(p)
		}
	}
	least := func() string {
		best := members[0]
		for _, m := range members[1:] {
			if load[m] < load[best] {
				best = m
			}
		}
		return best
	}
	// Free partitions, heaviest first, to the least loaded member.
	var free []int
	for p := range Partitions {
		if _, ok := owner[p]; !ok {
			free = append(free, p)
		}
	}
	slices.SortStableFunc(free, func(a, b int) int { return w(b) - w(a) })
	for _, p := range free {
		m := least()
		owner[p] = m
		load[m] += w(p)
	}
	// Move partitions from the most to the least loaded while a move
	// narrows the gap. Each move lowers the sum of squared loads, so this
	// ends.
	for {
		hi, lo := members[0], members[0]
		for _, m := range members {
			if load[m] > load[hi] {
				hi = m
			}
			if load[m] < load[lo] {
				lo = m
			}
		}
		gap := load[hi] - load[lo]
		best := -1
		for p := range Partitions {
			if owner[p] != hi || w(p) >= gap {
				continue
			}
			// The move closest to halving the gap.
			if best < 0 || abs(gap-2*w(p)) < abs(gap-2*w(best)) {
				best = p
			}
		}
		if best < 0 {
			return owner
		}
		owner[best] = lo
		load[hi] -= w(best)
		load[lo] += w(best)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
