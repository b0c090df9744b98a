package server

import (
	"container/list"
	"errors"
	"fmt"
	"sync"

	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/store"
)

// errModelsBusy is returned when every open model is in use and no other
// can be opened (Config.MaxModels); the request may be retried.
var errModelsBusy = errors.New("server: every open model is busy; retry later")

// sessKey identifies interchangeable analyzer sessions: same model, same
// request options, same hidden states.
type sessKey struct {
	model  string
	opt    core.Options
	hidden string
}

// modelEntry is an open model and the sessions on it that are in use.
type modelEntry struct {
	m    *store.Model
	busy int
}

// idleSess is a warm session waiting for its next request.
type idleSess struct {
	key  sessKey
	sess *core.Session
}

// pool keeps open models and warm analyzer sessions. Idle sessions are
// kept in least-recently-used order, at most cacheSize of them; a session
// in use belongs to one analysis only (analyzers are not safe for
// concurrent use). Since an analysis runs only while it holds one of the
// server's parallel slots, at most parallel+cacheSize sessions are open.
type pool struct {
	st        *store.Store
	cacheSize int
	maxModels int
	threads   int
	hooks     core.Hooks

	mu     sync.Mutex
	models map[string]*modelEntry
	idle   *list.List // of *idleSess, most recently used at the front
	opened int        // sessions opened so far (for tests and logs)
	closed bool
}

func newPool(st *store.Store, cacheSize, maxModels, threads int, hooks core.Hooks) *pool {
	return &pool{st: st, cacheSize: cacheSize, maxModels: maxModels, threads: threads, hooks: hooks,
		models: map[string]*modelEntry{}, idle: list.New()}
}

// lease is a session checked out of the pool.
type lease struct {
	key  sessKey
	sess *core.Session
}

// acquire returns a session for (model, opt, hidden): a warm one if one is
// idle, otherwise a new one. Release it with release.
func (p *pool) acquire(model string, opt core.Options, hidden []int) (*lease, error) {
	key := sessKey{model: model, opt: opt, hidden: fmt.Sprint(hidden)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("server: shutting down")
	}
	for e := p.idle.Front(); e != nil; e = e.Next() {
		is := e.Value.(*idleSess)
		if is.key == key {
			p.idle.Remove(e)
			p.models[model].busy++
			p.mu.Unlock()
			return &lease{key: key, sess: is.sess}, nil
		}
	}
	me, err := p.openModelLocked(model)
	if err != nil {
		p.mu.Unlock()
		return nil, err
	}
	me.busy++
	p.opened++
	p.mu.Unlock()

	// Opening a session builds onnxruntime sessions: do it unlocked.
	sess, err := core.NewSession(me.m, opt, hidden, p.threads, p.hooks)
	if err != nil {
		p.mu.Lock()
		me.busy--
		p.mu.Unlock()
		return nil, err
	}
	return &lease{key: key, sess: sess}, nil
}

// openModelLocked returns the open model name, opening it (and closing the
// least recently used idle model beyond maxModels) if needed.
func (p *pool) openModelLocked(name string) (*modelEntry, error) {
	if me, ok := p.models[name]; ok {
		return me, nil
	}
	if len(p.models) >= p.maxModels && !p.evictModelLocked() {
		return nil, errModelsBusy
	}
	m, err := p.st.Open(name)
	if err != nil {
		return nil, err
	}
	me := &modelEntry{m: m}
	p.models[name] = me
	return me, nil
}

// evictModelLocked closes one model that no analysis is using, with its
// idle sessions (the one whose sessions were used least recently).
func (p *pool) evictModelLocked() bool {
	victim := ""
	for e := p.idle.Back(); e != nil; e = e.Prev() {
		name := e.Value.(*idleSess).key.model
		if p.models[name].busy == 0 {
			victim = name
			break
		}
	}
	if victim == "" {
		for name, me := range p.models {
			if me.busy == 0 {
				victim = name
				break
			}
		}
	}
	if victim == "" {
		return false
	}
	for e := p.idle.Front(); e != nil; {
		next := e.Next()
		if is := e.Value.(*idleSess); is.key.model == victim {
			is.sess.Close()
			p.idle.Remove(e)
		}
		e = next
	}
	p.models[victim].m.Close()
	delete(p.models, victim)
	return true
}

// release returns a leased session to the pool, keeping it warm; the least
// recently used idle session beyond cacheSize is closed.
func (p *pool) release(l *lease) {
	p.mu.Lock()
	defer p.mu.Unlock()
	me := p.models[l.key.model]
	if me != nil {
		me.busy--
	}
	if p.closed || p.cacheSize <= 0 {
		l.sess.Close()
		if p.closed && me != nil && me.busy == 0 {
			me.m.Close()
			delete(p.models, l.key.model)
		}
		return
	}
	p.idle.PushFront(&idleSess{key: l.key, sess: l.sess})
	for p.idle.Len() > p.cacheSize {
		e := p.idle.Back()
		e.Value.(*idleSess).sess.Close()
		p.idle.Remove(e)
	}
}

// stats returns the number of idle sessions, open models and sessions
// opened so far.
func (p *pool) stats() (idle, models, opened int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle.Len(), len(p.models), p.opened
}

// close closes every idle session and every model no analysis uses; later
// releases close their sessions.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for e := p.idle.Front(); e != nil; e = e.Next() {
		e.Value.(*idleSess).sess.Close()
	}
	p.idle.Init()
	for name, me := range p.models {
		if me.busy == 0 {
			me.m.Close()
			delete(p.models, name)
		}
	}
}
