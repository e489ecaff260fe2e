package dunningapp

import (
	"hash/maphash"
	"sync"
)

// lanes runs work on n goroutines. Work with the same key runs on the same
// goroutine, in the order it was submitted: the events of one invoice are
// applied in the order JetStream delivered them, as with a single handler,
// while different invoices proceed in parallel. A handler is a handful of
// sequential KV round trips, so handling one event at a time left the
// process waiting on the network most of the time.
type lanes struct {
	seed maphash.Seed
	work []chan func()
	wg   sync.WaitGroup
}

// newLanes starts n lanes, each with a small queue: when a lane is full,
// submit blocks, which holds back the consumer (back pressure).
func newLanes(n int) *lanes {
	l := &lanes{seed: maphash.MakeSeed(), work: make([]chan func(), n)}
	for i := range l.work {
		l.work[i] = make(chan func(), 32)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for f := range l.work[i] {
				f()
			}
		}()
	}
	return l
}

// submit queues f on the lane of key.
func (l *lanes) submit(key string, f func()) {
	l.work[maphash.String(l.seed, key)%uint64(len(l.work))] <- f
}

// close runs what is queued and returns when every lane is done. Nothing
// may be submitted after it.
func (l *lanes) close() {
	for _, c := range l.work {
		close(c)
	}
	l.wg.Wait()
}
