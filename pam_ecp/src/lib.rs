//! pam_ecp: the PAM module (built in the module issue). Until then it
//! exports nothing, so no PAM stack can load it by mistake.
