//! Black-box tests of the `mutt` processes against real Redis and PostgreSQL. One binary
//! (a module per area) keeps link time down.

mod audit_roles;
mod backpressure;
mod bad_input;
mod channel;
mod compose;
mod console;
mod console_api;
mod control;
mod docs;
mod durability;
mod failover;
mod faults;
mod hold;
mod idempotency;
mod intake;
mod live;
mod muttdev_operate;
mod muttdev_routing;
mod muttdev_stack;
mod overload;
mod pipeline;
mod remediation;
mod replay;
mod retention;
mod secrets;
mod semantics;
mod shutdown;
mod slo;
mod traces;
mod unhandled;
mod upgrade;
