/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A QEMU event, parsed and checked once by the QMP client and handed to every observer as a const QmpEvent *.
 *
 * Everything QEMU sends is untrusted input. An event needs a string name; a message without one is not an event
 * and qmp_event_parse() refuses it with -EBADMSG. A name this module does not know, or a known one whose data does
 * not have the shape QEMU's schema gives it (a missing or mistyped field), becomes QMP_EVENT_UNKNOWN: the name,
 * timestamp and raw data are still there, the typed fields are not. The typed fields are only read for the type
 * they belong to.
 *
 * Everything is borrowed from the message the event came in, valid during the observer call only. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"

typedef enum QmpEventType {
        QMP_EVENT_UNKNOWN,              /* another event, or a known one with malformed data */
        QMP_EVENT_SHUTDOWN,             /* QEMU is about to exit (guest poweroff, quit, signal, panic, …) */
        QMP_EVENT_POWERDOWN,            /* ACPI power button pressed (system_powerdown) */
        QMP_EVENT_RESET,
        QMP_EVENT_STOP,                 /* vCPUs stopped (paused) */
        QMP_EVENT_RESUME,               /* vCPUs running again */
        QMP_EVENT_SUSPEND,
        QMP_EVENT_WAKEUP,
        QMP_EVENT_BALLOON_CHANGE,
        QMP_EVENT_GUEST_PANICKED,
        QMP_EVENT_VSERPORT_CHANGE,      /* the guest opened or closed a virtio-serial port (the guest agent's) */
        _QMP_EVENT_TYPE_MAX,
        _QMP_EVENT_TYPE_INVALID = -EINVAL,
} QmpEventType;

/* The QEMU event names ("SHUTDOWN", "BALLOON_CHANGE", …); QMP_EVENT_UNKNOWN has none. */
DECLARE_STRING_TABLE(qmp_event_type, QmpEventType);

typedef struct QmpEvent {
        QmpEventType type;
        const char *name;               /* as QEMU sent it, never NULL */
        uint64_t timestamp_usec;        /* CLOCK_REALTIME, QEMU's own; 0 when missing or invalid */
        json_object *data;              /* the raw "data" member, NULL when there is none */
        union {
                struct {
                        bool guest;             /* the guest asked for it */
                        const char *reason;     /* QEMU's ShutdownCause: "guest-shutdown", "host-qmp-quit", … */
                } shutdown, reset;
                struct {
                        uint64_t actual;        /* the balloon's new size in bytes */
                } balloon_change;
                struct {
                        const char *action;     /* "pause", "poweroff", "run" */
                } guest_panicked;
                struct {
                        const char *id;         /* the virtserialport's device id */
                        bool open;
                } vserport_change;
        };
} QmpEvent;

/* Fills *ret from a whole QMP message ({"event": …, "data": …, "timestamp": …}). -EBADMSG when the message is
 * not an object with a string "event" member (*ret untouched); 0 otherwise, also for QMP_EVENT_UNKNOWN. */
int qmp_event_parse(json_object *message, QmpEvent *ret);
