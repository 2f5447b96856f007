"""The timebank's people: members, organisations, roles, sessions, audit and zones.

Domain services over the store; the API (`scambio.api.people`, `.orgs`, `.session`) and
the command line call them. `context.Timebank` bundles what they need. Who may act on
what is decided in `authz`; what happened is recorded by `audit`.
"""
