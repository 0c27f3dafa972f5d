"""A community file as people write it by hand (FULL): the first example of
docs/contracts.md, for the tests that read it (test_community) and import it (test_apply).
It stays literal, not built by support.world's `community`, because how it is written is
what those tests read."""

# The first example of docs/contracts.md, plus a second resident and a family member of each
# role.
FULL = """
timezone: Asia/Shanghai
residents:
  - id: r-301
    name: Wang Shulan
    building: "3"
    unit: "301"
    devices:
      - {id: curtain-301, kind: curtain}
      - {id: door-301, kind: door}
      - {id: light-301, kind: light}
      - {id: card-301, kind: help}
    routines:
      - {kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}
      - {kind: curtain_close, start: "18:00", end: "22:30"}
      - {kind: light_on, start: "17:30", end: "21:00"}
      - {kind: door, start: "06:00", end: "22:00"}
      - {kind: inactivity, hours: 12}
    away: [{from: "2026-12-01", to: "2026-12-07"}]
  - id: r-302
    name: Zhao Guiying
    building: "3"
    unit: "302"
    devices:
      - {id: curtain-302, kind: curtain}
      - {id: card-302, kind: help}
    routines:
      - {kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}
people:
  - {id: v-li, name: Li Ming, role: volunteer, buildings: ["3"], notify: ["ntfy://ntfy.example.org/li-ming"]}
  - {id: s-chen, name: Chen Fang, role: staff, notify: ["mailto://chen:pass@mail.example.org"]}
  - {id: f-wang, name: Wang Jun, role: family, resident: r-301, consent: "2026-11-20", notify: ["tgram://bottoken/chatid"]}
escalation:
  - {after: 0m, notify: volunteers}
  - {after: 15m, notify: staff}
  - {after: 30m, notify: family}
"""  # noqa: E501
