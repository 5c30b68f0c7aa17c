"""Where calibrate puts Q/DQ: a pure plan with a reason per decision, and the one function applying it."""
