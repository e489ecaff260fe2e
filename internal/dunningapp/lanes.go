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
	seed   maphash.Seed
	work   []chan func()
	wg     sync.WaitGroup
	mu     sync.RWMutex // submit (read) against close (write)
	closed bool
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

// submit queues f on the lane of key. It reports false, without queueing,
// once the lanes are closed (a consumer that outlived its drain: the caller
// hands the message back).
func (l *lanes) submit(key string, f func()) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return false
	}
	l.work[maphash.String(l.seed, key)%uint64(len(l.work))] <- f
	return true
}

// close runs what is queued and returns when every lane is done; later
// submissions are refused. It is safe to call more than once.
func (l *lanes) close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		for _, c := range l.work {
			close(c)
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
}
