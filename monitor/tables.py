"""The Core tables behind the models (monitor.models), each under its full name, for the
set-based statements of the engine, the board, the queue and the ingestor. One name per
table everywhere: ROUTINES is always the routines, RESIDENTS always the residents."""

from __future__ import annotations

from monitor.models import (
    Alert,
    AlertNote,
    AwayPeriod,
    DayMark,
    Delivery,
    Device,
    Event,
    Person,
    Resident,
    Routine,
    Schedule,
    Settlement,
    table,
)

ALERTS = table(Alert)
ALERT_NOTES = table(AlertNote)
AWAY_PERIODS = table(AwayPeriod)
DAY_MARKS = table(DayMark)
DELIVERIES = table(Delivery)
DEVICES = table(Device)
EVENTS = table(Event)
PEOPLE = table(Person)
RESIDENTS = table(Resident)
ROUTINES = table(Routine)
SCHEDULES = table(Schedule)
SETTLEMENTS = table(Settlement)
