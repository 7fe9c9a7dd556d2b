"""Product data for the demo shop: a small, fixed Python list.

Prices are integer cents (EUR). Everything here is immutable and shared
read-only between app instances; per-app mutable state (live stock levels)
lives in the app itself (see ``shop.ShopState``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Review:
    author: str
    rating: int  # 1..5
    text: str


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    price: int  # cents
    image: str  # file name under static/img/
    summary: str
    description: str
    colours: tuple[str, ...]
    details: tuple[str, ...]
    reviews: tuple[Review, ...]
    initial_stock: int

    @property
    def image_url(self) -> str:
        return f"/static/img/{self.image}"

    @property
    def url(self) -> str:
        return f"/product/{self.id}"

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "price": self.price,
            "price_display": format_price(self.price),
            "currency": "EUR",
            "image": self.image_url,
            "url": self.url,
            "summary": self.summary,
            "description": self.description,
            "colours": list(self.colours),
        }


def format_price(cents: int) -> str:
    return f"€{cents / 100:,.2f}"


PRODUCTS: tuple[Product, ...] = (
    Product(
        id=1,
        name="Stoneware Mug",
        price=1800,
        image="mug.svg",
        summary="Hand-thrown, dishwasher safe, holds a generous 350 ml.",
        description=(
            "Thrown on the wheel in a small studio outside Porto, each mug has a "
            "reactive glaze that pools a little differently. Comfortable handle, "
            "thick walls that keep your coffee warm, and a speckled clay body."
        ),
        colours=("Sage", "Sand", "Charcoal"),
        details=("350 ml capacity", "Dishwasher and microwave safe", "Made in Portugal"),
        reviews=(
            Review("Maren", 5, "My new favourite mug. The glaze is even nicer in person."),
            Review("Tom", 4, "Lovely weight. Slightly smaller than I expected."),
        ),
        initial_stock=24,
    ),
    Product(
        id=2,
        name="Linen Tote Bag",
        price=2400,
        image="tote.svg",
        summary="Heavyweight washed linen with an inside pocket.",
        description=(
            "A roomy everyday tote in stonewashed European linen. Long handles fit "
            "over a winter coat, and the inner zip pocket keeps keys where you can "
            "find them."
        ),
        colours=("Natural", "Olive", "Navy"),
        details=("38 × 42 cm, 10 cm gusset", "100% European linen", "Machine wash at 30 °C"),
        reviews=(
            Review("Ines", 5, "Carries a full grocery run without complaint."),
            Review("Jonas", 5, "Softens beautifully after a few washes."),
        ),
        initial_stock=17,
    ),
    Product(
        id=3,
        name="Merino Beanie",
        price=3200,
        image="beanie.svg",
        summary="Fine-rib knit in soft, non-itchy merino wool.",
        description=(
            "Knitted from extra-fine merino that regulates temperature and does not "
            "itch. A deep turn-up gives you two ways to wear it."
        ),
        colours=("Rust", "Heather grey", "Forest"),
        details=("100% extra-fine merino", "One size", "Hand wash cold"),
        reviews=(
            Review("Priya", 5, "Warm without being hot on the train. Perfect."),
            Review("Sam", 4, "Great colour. Runs a little snug."),
        ),
        initial_stock=9,
    ),
    Product(
        id=4,
        name="Dotted Notebook A5",
        price=1450,
        image="notebook.svg",
        summary="192 pages of 100 gsm paper that fountain pens love.",
        description=(
            "A lay-flat, thread-bound notebook with a 5 mm dot grid, numbered pages, "
            "two ribbon markers and a cloth cover that wears in nicely."
        ),
        colours=("Terracotta", "Ink blue", "Black"),
        details=("A5, 192 numbered pages", "100 gsm ivory paper", "Lay-flat binding"),
        reviews=(
            Review("Lea", 5, "No bleed-through even with a broad nib."),
            Review("Chris", 5, "The cloth cover feels great."),
        ),
        initial_stock=32,
    ),
    Product(
        id=5,
        name="Potted Succulent",
        price=2100,
        image="succulent.svg",
        summary="An easy-going echeveria in a glazed ceramic pot.",
        description=(
            "A healthy echeveria rosette, potted in gritty soil and a glazed ceramic "
            "pot with a drainage hole. Needs a sunny windowsill and water about "
            "every two weeks."
        ),
        colours=("White pot", "Terracotta pot", "Speckled pot"),
        details=("Pot Ø 12 cm", "Plant height approx. 10 cm", "Care card included"),
        reviews=(
            Review("Noor", 5, "Arrived perfectly packed and still thriving."),
            Review("Ben", 4, "Smaller than the photo but very healthy."),
        ),
        initial_stock=6,
    ),
    Product(
        id=6,
        name="Soy Candle · Cedar & Fig",
        price=2600,
        image="candle.svg",
        summary="Hand-poured soy wax, around 45 hours of burn time.",
        description=(
            "Warm cedarwood, green fig leaf and a hint of black pepper. Poured by "
            "hand in small batches with a cotton wick, in a reusable glass jar."
        ),
        colours=("Amber glass", "Clear glass"),
        details=("220 g soy wax", "Approx. 45 h burn time", "Cotton wick, no paraffin"),
        reviews=(
            Review("Ada", 5, "Smells like a walk in the woods. Buying another."),
            Review("Felix", 4, "Subtle scent, very clean burn."),
        ),
        initial_stock=14,
    ),
    Product(
        id=7,
        name="Insulated Bottle 500 ml",
        price=2900,
        image="bottle.svg",
        summary="Keeps drinks cold for 24 hours or hot for 12.",
        description=(
            "Double-walled stainless steel with a powder-coated finish that will "
            "not sweat or slip. The leak-proof cap has a carry loop."
        ),
        colours=("Mint", "Coral", "Slate"),
        details=("500 ml", "Cold 24 h / hot 12 h", "BPA-free cap"),
        reviews=(
            Review("Kai", 5, "Ice still there at the end of a hot day."),
            Review("Mira", 5, "Fits my bike's bottle cage."),
        ),
        initial_stock=21,
    ),
    Product(
        id=8,
        name="Wool Throw",
        price=8900,
        image="throw.svg",
        summary="A generous lambswool blanket woven in Wales.",
        description=(
            "Woven on a traditional mill in Wales from soft lambswool, finished with "
            "a twisted fringe. Big enough for the sofa, light enough for summer "
            "evenings outside."
        ),
        colours=("Oat", "Moss", "Stripe"),
        details=("130 × 180 cm", "100% lambswool", "Dry clean or gentle wool wash"),
        reviews=(
            Review("Hannah", 5, "Heirloom quality. Worth every cent."),
            Review("Luca", 5, "So cosy, the cat has claimed it."),
        ),
        initial_stock=4,
    ),
)

PRODUCTS_BY_ID: dict[int, Product] = {p.id: p for p in PRODUCTS}


def get_product(product_id: object) -> Product | None:
    """Look a product up by id (int or decimal string); None if unknown."""
    try:
        return PRODUCTS_BY_ID.get(int(str(product_id).strip()))
    except ValueError:
        return None
