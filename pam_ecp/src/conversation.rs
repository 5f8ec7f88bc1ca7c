//! Talking to the person logging in, through the application's PAM
//! conversation function.

use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_TEXT_INFO};
use pam::conv::Conv;
use zeroize::Zeroizing;

/// What the flow needs from a conversation.
pub trait Conversation {
    /// Asks without echo (a passphrase); `None` if there is no answer.
    fn ask_hidden(&self, prompt: &str) -> Option<Zeroizing<Vec<u8>>>;
    /// Asks with echo (a signature to paste).
    fn ask_visible(&self, prompt: &str) -> Option<String>;
    fn tell_error(&self, message: &str);
    fn tell_info(&self, message: &str);
}

pub struct PamConversation<'a> {
    pub conv: Conv<'a>,
    /// The application passed PAM_SILENT (sudo-rs does for plain
    /// commands): informational messages are not shown; prompts and
    /// errors still are.
    pub silent: bool,
}

impl Conversation for PamConversation<'_> {
    fn ask_hidden(&self, prompt: &str) -> Option<Zeroizing<Vec<u8>>> {
        let answer = self.conv.send(PAM_PROMPT_ECHO_OFF, prompt).ok()??;
        // SecretBytes wipes itself; keep our copy in a wiping buffer too.
        Some(Zeroizing::new(answer.as_bytes().to_vec()))
    }

    fn ask_visible(&self, prompt: &str) -> Option<String> {
        let answer = self.conv.send(PAM_PROMPT_ECHO_ON, prompt).ok()??;
        answer.as_str().ok().map(str::to_owned)
    }

    fn tell_error(&self, message: &str) {
        let _ = self.conv.send(PAM_ERROR_MSG, message);
    }

    fn tell_info(&self, message: &str) {
        if self.silent {
            return;
        }
        let _ = self.conv.send(PAM_TEXT_INFO, message);
    }
}
