// What a unit-bound user may see, as list queries need it (computed by the response network's tree).

export interface UnitScope {
  /** the user's unit and every unit below it */
  unitIds: string[];
  /** things with no unit, or with a unit that does not exist, belong to the roots of the network (the call centre) */
  unplaced: boolean;
}
