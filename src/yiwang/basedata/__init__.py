"""四标四实 (basedata): the standard map (areas and grids), standard addresses and buildings,
and the four actuals (population, houses, units, facilities), kept current by grid workers.

Every other module locates its objects through this one (``service.locate``), so it is the
shared reference data that domain modules may import.
"""
