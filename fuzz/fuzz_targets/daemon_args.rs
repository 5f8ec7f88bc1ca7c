#![no_main]
//! The daemon's decisions called in-process with arbitrary arguments from
//! root and non-root callers: nothing may panic, and a Verify that is not
//! backed by an issued challenge never succeeds.

use std::sync::OnceLock;

use ecpd::config::Config;
use ecpd::service::{Caller, Service};
use ecpd::store::Store;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Call {
    op: u8,
    root: bool,
    user: String,
    a: String,
    b: String,
}

fn service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let config = Config {
            challenges_per_user_per_minute: 0,
            challenges_per_source_per_minute: 0,
            failures_before_penalty: 0,
            ..Config::default()
        };
        Service::new(
            Store::temporary().unwrap(),
            config,
            ecp_core::HostName::parse("fuzz").unwrap(),
            std::sync::Arc::new(ecpd::clock::SystemClock),
        )
        .unwrap()
    })
}

fuzz_target!(|call: Call| {
    let service = service();
    let caller = if call.root {
        Caller { uid: 0, name: None }
    } else {
        Caller {
            uid: 1000,
            name: Some(call.user.clone()),
        }
    };
    match call.op % 6 {
        0 => {
            let _ = service.challenge(&caller, &call.user, &call.a, &call.b);
        }
        1 => {
            assert!(
                service
                    .verify(&caller, &call.user, &call.a, &call.b)
                    .is_err(),
                "unissued challenge verified"
            );
        }
        2 => {
            let _ = service.enroll(&caller, &call.user, &call.a, &call.b);
        }
        3 => {
            let _ = service.revoke(&caller, &call.user, &call.a, call.b.is_empty());
        }
        4 => {
            let _ = service.list(&caller, &call.user);
        }
        _ => {
            let _ = service.unlock(&caller, &call.user);
        }
    }
});
