#include "pipeline/stage.h"
