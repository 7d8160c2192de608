/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The test-only org.varlink.certification interface (built with -Dcertification=true), served so that
 * the reference clients (varlink-go-certification -client, the python and rust certification clients)
 * can check our server: Start hands out a client id, Test01…Test11 must then be called in order, each
 * with the previous reply as its arguments, and End answers all_ok.
 *
 * Replies and checks follow the reference servers: an unknown client id → ClientIdError; a call out of
 * order, with unexpected arguments or with the wrong mode (Test10 needs "more", Test11 "oneway", the
 * others neither) → CertificationError with "wants" (the expected call) and "got" (the call as
 * received), and the client id is dropped, so the run must start over. At most
 * CERTIFICATION_CLIENTS_MAX runs are tracked; idle ones expire, and beyond the cap Start evicts the
 * least recently used one. */

#include "varlink/varlink.h"

#define CERTIFICATION_CLIENTS_MAX 64U
#define CERTIFICATION_CLIENT_IDLE_USEC (10U * 60U * USEC_PER_SEC)

#define CERTIFICATION_ERROR_CLIENT_ID "org.varlink.certification.ClientIdError"
#define CERTIFICATION_ERROR_CERTIFICATION "org.varlink.certification.CertificationError"

int certification_register(VarlinkServer *s);
