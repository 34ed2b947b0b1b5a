package fsm

import (
	"slices"
	"strings"
)

// Feed is the change feed of a State, as a ShipCache reads it.
type Feed interface {
	Published() (index, restores uint64)
	Changes(since uint64) ([]Change, <-chan struct{}, error)
}

// ShipCache keeps decoded ships between reads of the state: each read
// re-reads only the ships the change feed names since the last one, so a
// reader that looks at every ship after every small change (the
// scheduler, a worker) does not decode them all again. The ships it
// returns are shared between reads: callers must not change them.
type ShipCache struct {
	// Node, when set, keeps only the ships placed on that node (a
	// worker's): a changed ship elsewhere costs an index lookup, not a
	// decode.
	Node string

	base     uint64 // every change up to base is in ships
	restores uint64 // the state's restores when the ships were read
	ships    map[string]*Ship
	order    []*Ship // ships by id, nil when it must be rebuilt
}

// Base is the index up to which the last read took every change into
// account: a reader that waits for changes must wait for those after it
// (not after its view's index, which may be newer), or it would miss the
// ships changed in between.
func (c *ShipCache) Base() uint64 { return c.base }

// Prepare reads the feed; call it before opening the view, and call the
// function it returns with that view to get every ship, by id. The feed's published index is
// read first: the view then has at least every entry up to it, and a
// change published later is named again by the next plan's feed read.
func (c *ShipCache) Prepare(st Feed) func(v *View) []*Ship {
	pub, restores := st.Published()
	var changed []string
	full := c.ships == nil || restores != c.restores
	if !full {
		changes, _, err := st.Changes(c.base)
		if err != nil { // compacted (or closed): read everything
			full = true
		}
		for _, ch := range changes {
			if ch.Topic == "ship" {
				changed = append(changed, ch.Key)
			}
		}
	}
	return func(v *View) []*Ship {
		c.base, c.restores = pub, restores
		if full {
			all := v.Ships(ShipFilter{Node: c.Node})
			c.ships = make(map[string]*Ship, len(all))
			for _, s := range all {
				c.ships[s.ID] = s
			}
			c.order = all
			return all
		}
		for _, id := range changed {
			var s *Ship
			ok := c.Node == "" || v.onNode(c.Node, id)
			if ok {
				s, ok = v.Ship(id)
			}
			_, had := c.ships[id]
			switch {
			case ok:
				c.ships[id] = s
				if !had {
					c.order = nil
				}
			case had:
				delete(c.ships, id)
				c.order = nil
			}
		}
		if c.order == nil {
			c.order = make([]*Ship, 0, len(c.ships))
			for _, s := range c.ships {
				c.order = append(c.order, s)
			}
			slices.SortFunc(c.order, func(a, b *Ship) int { return strings.Compare(a.ID, b.ID) })
		} else {
			// Same ids: swap the re-read records in place, found by id.
			for _, id := range changed {
				s, ok := c.ships[id]
				if !ok {
					continue
				}
				if i, found := slices.BinarySearchFunc(c.order, id, func(o *Ship, id string) int { return strings.Compare(o.ID, id) }); found {
					c.order[i] = s
				}
			}
		}
		return slices.Clone(c.order)
	}
}
