package scheduler

import (
	"errors"
	"slices"
	"strings"

	"github.com/armada-orchestrator/armada/fsm"
)

// shipCache keeps the ships decoded for the last plan. The next plan
// re-reads only the ships the change feed names since then, so a plan
// under a stream of small changes (allocations, reports) does not decode
// every ship again. Make never changes its input, so the ships are shared
// between plans.
type shipCache struct {
	base  uint64 // every change up to base is in ships
	ships map[string]*fsm.Ship
	order []*fsm.Ship // ships by id, nil when it must be rebuilt
}

// prepare reads the feed before the view opens and returns the function
// that brings the cache up to that view. The feed's published index is
// read first: the view then has at least every entry up to it, and a
// change published later is named again by the next plan's feed read.
func (c *shipCache) prepare(st Store) func(v *fsm.View) []*fsm.Ship {
	pub := st.Published()
	var changed []string
	full := c.ships == nil
	if !full {
		changes, _, err := st.Changes(c.base)
		if errors.Is(err, fsm.ErrCompacted) || err != nil {
			full = true
		}
		for _, ch := range changes {
			if ch.Topic == "ship" {
				changed = append(changed, ch.Key)
			}
		}
	}
	return func(v *fsm.View) []*fsm.Ship {
		c.base = pub
		if full {
			all := v.Ships(fsm.ShipFilter{})
			c.ships = make(map[string]*fsm.Ship, len(all))
			for _, s := range all {
				c.ships[s.ID] = s
			}
			c.order = all
			return all
		}
		for _, id := range changed {
			s, ok := v.Ship(id)
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
			c.order = make([]*fsm.Ship, 0, len(c.ships))
			for _, s := range c.ships {
				c.order = append(c.order, s)
			}
			slices.SortFunc(c.order, func(a, b *fsm.Ship) int { return strings.Compare(a.ID, b.ID) })
		} else if len(changed) > 0 {
			// Same ids: swap the re-read records in place.
			for i, s := range c.order {
				c.order[i] = c.ships[s.ID]
			}
		}
		return slices.Clone(c.order)
	}
}
