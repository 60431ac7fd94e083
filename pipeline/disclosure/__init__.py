"""Statistical disclosure control (convention, article 4).

- `policy`: the declarative policy of `config/disclosure.yaml`, its version and hash;
- `suppression`: primary suppression rules, then secondary suppression solved as a
  mixed-integer programme (HiGHS through scipy.optimize.milp), tightened by rounds of
  audit until the audit finds nothing;
- `programme`: the secondary suppression's mixed-integer programme for one sub-problem
  and the cuts audit findings add to it;
- `reader`: what a reader of the published table knows, as linear facts;
- `audit_solver`: the reader's questions solved with highspy;
- `audit`: the independent check, which sees only the published table, the zones and
  the policy, and computes by linear programming (HiGHS through highspy) what a reader
  could derive about every masked cell and every sum of masked cells of a relation.

The audit shares no code with the solver beyond the policy file: it rebuilds the
constraints itself, so a mistake in the solver's model cannot hide from it.
"""
