"""ICE: servers, candidates, the pair in use, consent and TURN checks."""
