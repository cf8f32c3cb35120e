// A deliberate violation of the house's rules, for tools/check-boundaries.py's own test:
// the pure planner reaching into the controller.
#pragma once
#include "controller/Controller.h"
